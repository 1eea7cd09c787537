"""Xsolla adapter unit tests (a package, so module names do not collide with stripe/)."""
