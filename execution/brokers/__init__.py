"""Brokers behind one interface (``execution.brokers.base.Broker``)."""
