"""Source texts: reading files into canonical text, and the sentences of a text with their spans."""
