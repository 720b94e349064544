"""Prompt templates: how an example's prompt and response are laid out as text before tokenising.

A template wraps the prompt (``prompt_format`` with one ``{prompt}`` slot) and the response
(``response_format`` with one ``{response}`` slot). The loss covers the rendered response only, so
anything in ``prompt_format`` (role markers, "### Response:") is conditioning, never a target.

Built-in templates (:data:`TEMPLATES`):

- ``plain`` (the default): ``"{prompt}\\n"`` then the response: short, good for the tiny
  character-level model and the maths generator;
- ``raw``: the prompt exactly as is (use when the data already carries its own separators);
- ``qa``: ``"Question: {prompt}\\nAnswer: "``;
- ``alpaca``: the Stanford Alpaca preamble with ``### Instruction:`` / ``### Response:``.

Use the *same* template for training and for generation at evaluation time
(:func:`qwt.data.encode_prompts` takes it too).

Example:
    >>> get_template("qa").prompt("What is 2 + 2?")
    'Question: What is 2 + 2?\\nAnswer: '
"""

from __future__ import annotations

import dataclasses

__all__ = ["Template", "TEMPLATES", "get_template"]


@dataclasses.dataclass(frozen=True)
class Template:
    """A named pair of format strings.

    Args:
        name: short identifier (recorded in configs/checkpoints).
        prompt_format: text containing ``{prompt}`` exactly once.
        response_format: text containing ``{response}`` exactly once.

    Example:
        >>> Template("t", "Q: {prompt}\\nA: ").render("1 + 1?", "2")
        ('Q: 1 + 1?\\nA: ', '2')
    """

    name: str
    prompt_format: str
    response_format: str = "{response}"

    def __post_init__(self):
        if self.prompt_format.count("{prompt}") != 1:
            raise ValueError(f"template {self.name!r}: prompt_format must contain '{{prompt}}' exactly once")
        if self.response_format.count("{response}") != 1:
            raise ValueError(f"template {self.name!r}: response_format must contain '{{response}}' exactly once")

    # str.replace, not str.format: user text and templates may contain braces (LaTeX, code).
    def prompt(self, prompt: str) -> str:
        """The rendered prompt text."""
        return self.prompt_format.replace("{prompt}", prompt)

    def response(self, response: str) -> str:
        """The rendered response text."""
        return self.response_format.replace("{response}", response)

    def render(self, prompt: str, response: str) -> tuple[str, str]:
        """Both rendered parts, as ``(prompt_text, response_text)``."""
        return self.prompt(prompt), self.response(response)


_ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately "
           "completes the request.\n\n### Instruction:\n{prompt}\n\n### Response:\n")

TEMPLATES: dict[str, Template] = {
    "plain": Template("plain", "{prompt}\n"),
    "raw": Template("raw", "{prompt}"),
    "qa": Template("qa", "Question: {prompt}\nAnswer: "),
    "alpaca": Template("alpaca", _ALPACA),
}


def get_template(template: str | Template) -> Template:
    """Resolves a template name (see :data:`TEMPLATES`) or passes a :class:`Template` through.

    Args:
        template: a name or a Template.

    Returns:
        The Template.

    Example:
        >>> get_template("plain").prompt("hi")
        'hi\\n'
    """
    if isinstance(template, Template):
        return template
    if isinstance(template, str):
        if template not in TEMPLATES:
            raise ValueError(f"unknown template {template!r}; choose from {', '.join(TEMPLATES)} or pass a Template")
        return TEMPLATES[template]
    raise TypeError(f"template must be a name or a Template, got {type(template).__name__}")
