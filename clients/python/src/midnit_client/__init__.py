"""midnit-client: the backend's side of midnit-worker.

    from midnit_client import Client
    with Client("amqp://guest:guest@127.0.0.1:5672/%2f", public_key=WORKER_KEY) as client:
        done = client.render({"photo": photo}, [{"name": "thumb", "format": "jpeg", "width": 512}])
        thumb = done.output("thumb").data
"""
from ._client import (
    CONTENT_TYPE,
    DEADLINE_HEADER,
    DIRECT_REPLY_TO,
    VERSION,
    Client,
    Output,
    Pending,
    Rendered,
    request_body,
)
from .errors import *  # noqa: F401,F403 - every error class is part of the API
from .errors import BY_CODE, MidnitError
from .receipt import check_reply, key_id, sig_structure, verify
from .sealed import SEALED_CONTENT_TYPE, Directory, DirectoryError, verify_directory

__all__ = [
    "CONTENT_TYPE", "DEADLINE_HEADER", "DIRECT_REPLY_TO", "VERSION", "BY_CODE", "Client",
    "MidnitError", "Output", "Pending", "Rendered", "check_reply", "key_id", "request_body",
    "sig_structure", "verify", "SEALED_CONTENT_TYPE", "Directory", "DirectoryError",
    "verify_directory",
]
__version__ = "0.1.0"
