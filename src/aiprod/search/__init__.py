"""Search over productions: the filter language, full-text indexes and listings.

* :mod:`aiprod.search.filters` reads ``filter=`` (a small grammar, parsed with
  positions so a mistake is reported where it is) into clauses;
* :mod:`aiprod.search.fields` says which fields exist, what values they take
  and which column answers them;
* :mod:`aiprod.search.text` decides what text of a production is searchable
  and how words are read per language (stemming);
* :mod:`aiprod.search.fulltext` keeps the full-text indexes (SQLite FTS5,
  PostgreSQL tsvector + GIN) and turns ``q=`` into a match on them;
* :mod:`aiprod.search.sync` keeps the search columns and the full-text index
  in step with every write of a job, in the write's own transaction;
* :mod:`aiprod.search.listing` builds the query, pages it by keyset and
  streams it (the bulk export's entry point: :func:`listing.stream`).
"""
