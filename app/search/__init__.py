"""Search: one filter, parsed once and resolved once, for lists, stats, grids, tiles and export."""
