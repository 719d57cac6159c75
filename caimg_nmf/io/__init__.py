"""Reading movies and reading/writing results."""
from .movie import Movie, load_movie
from .result import Result, SCHEMA_VERSION

__all__ = ["Movie", "load_movie", "Result", "SCHEMA_VERSION"]
