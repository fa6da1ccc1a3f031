"""Federation's codes in the words of its pages."""

from django import template

from federation.protocol import PURPOSES

register = template.Library()


@register.filter
def purpose_words(code: str) -> str:
    """'early_help' -> 'Early help and family support' (an unknown code as it is)."""
    return PURPOSES.get(code, code)
