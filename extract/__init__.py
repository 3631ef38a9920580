"""Sources (files, WARC, datasets, MediaWiki dumps, the crawler) and text extractors."""
