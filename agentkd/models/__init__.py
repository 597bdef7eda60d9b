"""How we reach a model: llama.cpp in-process, the chat template, an OpenAI-compatible server, litellm, the catalog."""
