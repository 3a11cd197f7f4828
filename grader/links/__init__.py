"""Link submissions: a GitHub link handed in instead of a notebook (`parse`), fetched with the git CLI (`fetch`)."""

from grader.links.fetch import Fetched, fetch
from grader.links.parse import Link, LinkError, find_link, parse_link

__all__ = ["Fetched", "Link", "LinkError", "fetch", "find_link", "parse_link"]
