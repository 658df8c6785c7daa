"""Emulated upstreams for tests, benchmarks and the demo: insurance REST APIs, an OpenAI- and
Anthropic-compatible LLM server, and an MCP server. Loopback use only; never real services.
"""
