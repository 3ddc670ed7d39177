"""From source texts to a checked briefing: engines, chunking, map-reduce, the extractive
engine, citations, and the rendering of a briefing."""
