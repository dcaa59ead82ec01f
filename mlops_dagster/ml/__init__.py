"""Pure functions of the lifecycle (parse, featurize, train, evaluate, drift): no Dagster here."""
