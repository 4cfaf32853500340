"""Change data capture: the Basic engine (local state store) behind the ChangeDetector seam."""
