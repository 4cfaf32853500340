"""The sync run pipeline, the run ledger and the run lock: the only place sources, CDC, mapping and Iterable meet."""
