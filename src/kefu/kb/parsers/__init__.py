"""Turn files, bytes, folders and URLs into ``SourceDocument`` objects for the knowledge base.

    parse_bytes(data, name, ...)   one document from bytes; the parser chosen by extension or content type
    parse_file(path, root=...)     one file (size checked before reading; updated_at = its mtime)
    fetch_url(url, ...)            one web page or file over HTTP(S) (updated_at = Last-Modified)
    scan_folder(root, ...)         every file under a folder; bad files reported, not fatal

Formats: Markdown (kept as written), plain text, FAQ JSON (the pack's list format), FAQ CSV/XLSX
(header row in Chinese or English), text PDF, DOCX, HTML. Text may be UTF-8, UTF-16 (BOM), GB18030/
GBK or Big5. Anything that cannot be read raises ``ParseError`` (422) naming the file and the fix.
"""

from kefu.kb.parsers.common import DEFAULT_MAX_BYTES
from kefu.kb.parsers.dispatch import SUPPORTED_EXTENSIONS, parse_bytes, parse_file
from kefu.kb.parsers.faq import COLUMNS
from kefu.kb.parsers.fetch import fetch_url
from kefu.kb.parsers.folder import FileError, FolderScan, scan_folder

__all__ = [
    "COLUMNS",
    "DEFAULT_MAX_BYTES",
    "SUPPORTED_EXTENSIONS",
    "FileError",
    "FolderScan",
    "fetch_url",
    "parse_bytes",
    "parse_file",
    "scan_folder",
]
