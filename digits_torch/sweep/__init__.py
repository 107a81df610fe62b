"""Many networks at once: the grid, the stacked arithmetic, the record and the report."""
