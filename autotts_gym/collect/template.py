"""Client-side chat templates and token counting through ``transformers`` tokenizers.

Optional: ``pip install 'autotts-gym[collect-template]'``. ``--chat-template NAME`` loads
NAME's tokenizer (a Hugging Face model id or a local folder) and renders the question as
the model's own chat prompt, once per trajectory: the generated text is then appended
verbatim, so the model continues exactly what it wrote, inside its trained format.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import AutoTTSError


class TemplateError(AutoTTSError, ValueError):
    """A tokenizer or chat template could not be loaded or applied."""


@lru_cache(maxsize=8)
def load_tokenizer(name: str):
    """``transformers.AutoTokenizer`` for a model id or a local folder (cached)."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise TemplateError(f"{name}: tokenizers need transformers: pip install "
                            "'autotts-gym[collect-template]'") from None
    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TemplateError(f"{name}: cannot load a tokenizer: {first}") from None


class TokenCounter:
    """Counts generated tokens with a model's tokenizer (for servers that omit usage)."""

    def __init__(self, name: str):
        self.name = name
        self.tokenizer = load_tokenizer(name)

    def __call__(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))


@dataclass(frozen=True)
class ChatTemplate:
    """The model's chat template applied on the client: ``render(user)`` is the prompt
    text up to and including the assistant's generation prompt."""

    name: str
    template: str
    kwargs: tuple[tuple[str, object], ...] = ()

    @classmethod
    def load(cls, name: str, template_file: Path | str | None = None,
             kwargs: dict | None = None) -> ChatTemplate:
        tok = load_tokenizer(name)
        if template_file is not None:
            path = Path(template_file)
            if not path.is_file():
                raise TemplateError(f"{path}: chat template file not found")
            text: str | None = path.read_text(encoding="utf-8")
        else:
            text = getattr(tok, "chat_template", None)
            if isinstance(text, dict):
                text = text.get("default")
        if not text:
            raise TemplateError(f"{name}: the tokenizer has no chat template "
                                "(pass --chat-template-file FILE)")
        return cls(name, text, tuple(sorted((kwargs or {}).items())))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.template.encode()).hexdigest()

    def render(self, user: str) -> str:
        tok = load_tokenizer(self.name)
        try:
            out = tok.apply_chat_template([{"role": "user", "content": user}],
                                          chat_template=self.template, tokenize=False,
                                          add_generation_prompt=True, **dict(self.kwargs))
        except Exception as e:  # jinja errors of a user-supplied template  # noqa: BLE001
            raise TemplateError(f"{self.name}: applying the chat template failed: "
                                f"{type(e).__name__}: {e}") from None
        return out if isinstance(out, str) else str(out)

    def describe(self) -> str:
        kw = f" {json.dumps(dict(self.kwargs), sort_keys=True)}" if self.kwargs else ""
        return f"{self.name} (client-side, sha256 {self.sha256[:12]}){kw}"
