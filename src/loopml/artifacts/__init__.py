"""The content-addressed artifact store."""

from loopml.artifacts.store import ArtifactStore, StoredBlob

__all__ = ["ArtifactStore", "StoredBlob"]
