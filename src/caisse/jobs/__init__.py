"""Background jobs: a handler registry and the worker that runs claimed jobs."""
