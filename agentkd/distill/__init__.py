"""The distillation loop: state, nodes, the LangGraph graph, admission, curriculum, leak checks, a build."""
