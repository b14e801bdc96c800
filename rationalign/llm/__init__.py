"""Calling OpenAI-compatible chat endpoints: the one EndpointConfig, the client (retries, key
scrubbing), the on-disk answer cache and the Asker (many questions, bounded re-asks). Used by the
teacher rationale sources and the LLM judge."""

from rationalign.llm.asker import Answer, Asker, Question, fill, missing_placeholders
from rationalign.llm.client import ChatClient, ChatError, EndpointConfig, EndpointDown

__all__ = ["Answer", "Asker", "ChatClient", "ChatError", "EndpointConfig", "EndpointDown", "Question", "fill",
           "missing_placeholders"]
