"""Emulated upstreams (insurance REST APIs; LLM and MCP servers later) for tests and the demo."""
