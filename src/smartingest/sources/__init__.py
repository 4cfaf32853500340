"""Data source connectors behind one Source protocol."""
