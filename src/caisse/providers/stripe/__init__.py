"""The Stripe adapter: webhook signature policy, subscribed event catalogue and event simulator."""
