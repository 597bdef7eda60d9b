"""The distillation loop: state, nodes, the LangGraph graph, admission, curriculum, leak checks, one build end to end."""
