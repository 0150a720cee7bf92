"""Governance: tokens, envelope, budget — every decision journaled (§6)."""

from .envelope import DEFAULT_PROTECTED, Decision, Envelope, EnvelopeError

__all__ = ["DEFAULT_PROTECTED", "Decision", "Envelope", "EnvelopeError"]
