"""Student search (NEMOKD): search spaces, objectives, NSGA-II and random proposers, and
the driver that runs candidates as ordinary experiment runs (``qdistill search``)."""

from qdistill.search.config import SearchConfig, search_of
from qdistill.search.driver import SearchOutcome, run_search
from qdistill.search.space import SPACES, ArchitectureSpace

__all__ = [
    "SPACES",
    "ArchitectureSpace",
    "SearchConfig",
    "SearchOutcome",
    "run_search",
    "search_of",
]
