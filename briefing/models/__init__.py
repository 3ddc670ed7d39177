"""Everything that talks to a language model: the versioned prompts, the litellm boundary,
local models, token counting and the call log."""
