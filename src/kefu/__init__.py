"""kefu (客服): self-hosted, Chinese-first LLM customer service."""

__version__ = "0.1.0"
