"""The project's own SSH key: one ed25519 key pair, generated once, kept in the user's config folder."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def config_dir() -> Path:
    """$SHOOTOUT_CONFIG_DIR, else $XDG_CONFIG_HOME/i2v-shootout, else ~/.config/i2v-shootout."""
    if os.environ.get("SHOOTOUT_CONFIG_DIR"):
        return Path(os.environ["SHOOTOUT_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "i2v-shootout"


def project_key(folder: Path | None = None) -> Path:
    """The private key's path (id_ed25519, mode 600), created on first use; the public key is beside it (.pub)."""
    folder = folder or config_dir()
    private = folder / "id_ed25519"
    if not private.exists():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        private.with_suffix(".pub").write_text(public.decode() + " i2v-shootout\n")
    return private
