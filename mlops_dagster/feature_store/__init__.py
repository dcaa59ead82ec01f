"""The feature store: the registry of feature tables and what uses them."""
