"""Trajectory analysis on the host: reaction events and species over time."""

from jaxmlp.analysis.reactions import (
    DEFAULT_F_OFF,
    DEFAULT_F_ON,
    DEFAULT_MIN_LIFETIME,
    ReactionAnalysis,
    ReactionEvent,
    analyze_reactions,
    hill_formula,
    write_reaction_report,
)

__all__ = [
    "DEFAULT_F_OFF",
    "DEFAULT_F_ON",
    "DEFAULT_MIN_LIFETIME",
    "ReactionAnalysis",
    "ReactionEvent",
    "analyze_reactions",
    "hill_formula",
    "write_reaction_report",
]
