"""The follow graph: who follows, asked to follow, or blocked whom."""
