"""Whether claims are supported: the checker (offline lexical model, LLM judge, blend) and
the comparison of sources against each other."""
