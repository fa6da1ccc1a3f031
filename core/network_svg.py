"""The network picture, drawn on the server as SVG: the person in the centre and the team
around them, grouped by agency. It needs no JavaScript and nothing from the internet, prints
as it looks, and says everything in text (agency, role, name, "Lead professional"): colour
only repeats what the words already say. The accessible list on the page holds the same
facts; the picture is a summary of it, not a replacement."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from html import escape

from django.utils.safestring import SafeString, mark_safe

from core.selectors import TeamMember

NODE_WIDTH = 230
NODE_HEIGHT = 84  # at least; a box grows with the lines its wrapped labels take
CENTRE_RADIUS = 78
MARGIN = 24
CHARS_PER_LINE = 29  # at 14px Arial in a 230px box, with padding
CAPITALS_PER_LINE = 32  # the agency line, in 11px capitals

# Light fills, one per kind of agency, all dark-text-readable (contrast well above 4.5:1).
AGENCY_FILLS = {
    "social_care": "#f6d7d2",
    "early_help": "#fbe3c8",
    "school": "#d2e2f1",
    "early_years": "#dcebf7",
    "gp": "#d4ecd9",
    "health_visiting": "#dff0e2",
    "school_nursing": "#e3f2e6",
    "hospital": "#cfe8e3",
    "police": "#d9dcef",
    "housing": "#efe6cf",
    "probation": "#e4d9ec",
    "youth_justice": "#eadcf0",
    "youth": "#f3e1ec",
    "voluntary": "#e8ecd2",
}
MASKED_FILL = "#f3f2f1"
DEFAULT_FILL = "#ffffff"


@dataclass(frozen=True)
class _Placed:
    member: TeamMember
    x: float  # centre of the box
    y: float


@lru_cache(maxsize=4096)
def _wrap(text: str, width: int) -> tuple[str, ...]:
    """`text` in lines of at most `width` characters, broken between words (a word longer
    than a line is broken inside it): never cut short with "…". Remembered: the same roles,
    organisations and agencies are wrapped on every page, and each page draws two layouts."""
    lines: list[str] = []
    # A hyphenated name breaks after a hyphen first ("Fitzgerald-" / "Oyelaran").
    words = [part for word in text.split() for part in re.findall(r"[^-]+-*|-+", word)]
    for index, word in enumerate(words):
        joiner = "" if index and words[index - 1].endswith("-") else " "
        while len(word) > width:
            lines.append(word[:width])
            word = word[width:]
        if not word:
            continue
        if lines and len(lines[-1]) + len(joiner) + len(word) <= width:
            lines[-1] += joiner + word
        else:
            lines.append(word)
    return tuple(lines) or ("",)


def _text(
    x: float, y: float, text: str, *, size: int = 14, weight: str = "normal", anchor: str = "middle"
) -> str:
    return (
        f'<text x="{x:.0f}" y="{y:.0f}" font-size="{size}" font-weight="{weight}" '
        f'text-anchor="{anchor}">{escape(text)}</text>'
    )


@lru_cache(maxsize=4096)
def _lines_markup(lines: tuple[tuple[str, int, str], ...]) -> str:
    """A box's lines as <text> elements, centred on (0, 0)."""
    text_height = sum(size + 6 for _, size, _ in lines) - 6
    y = -text_height / 2 + lines[0][1] - 2
    out = []
    for text, size, weight in lines:
        out.append(_text(0, y, text, size=size, weight=weight))
        y += size + 6
    return "".join(out)


def _member_lines(member: TeamMember) -> list[tuple[str, int, str]]:
    """(text, size, weight) lines for one box, most important first, each wrapped to the
    box's width."""
    if member.masked:
        return [
            ("A sensitive service", 14, "bold"),
            ("is involved", 14, "bold"),
            ("Contact is brokered:", 13, "normal"),
            ("request contact below", 13, "normal"),
        ]
    agency = member.agency_label
    if member.lead_professional:
        agency = "Lead professional · " + agency
    lines = [(line, 11, "bold") for line in _wrap(agency.upper(), CAPITALS_PER_LINE)]
    for text, size, weight in (
        (member.practitioner_name, 14, "bold"),
        (member.role, 13, "normal"),
        (member.organisation, 13, "normal"),
    ):
        lines += [(line, size, weight) for line in _wrap(text, CHARS_PER_LINE)]
    return lines


def _box_height(lines: Sequence[tuple[str, int, str]]) -> float:
    return max(NODE_HEIGHT, 14 + sum(size + 6 for _, size, _ in lines))


def _member_title(member: TeamMember) -> str:
    if member.masked:
        return "A sensitive service is involved. Contact is brokered: request contact."
    parts = [
        member.practitioner_name,
        member.role,
        member.organisation,
        member.agency_label,
    ]
    if member.lead_professional:
        parts.insert(0, "Lead professional")
    if member.phone:
        parts.append(f"Phone {member.phone}")
    return ", ".join(p for p in parts if p)


def _layout(
    members: Sequence[TeamMember], box_height: float
) -> tuple[float, float, float, float, list[_Placed]]:
    """Place the boxes evenly on an ellipse around the centre, agency by agency, starting
    at the top and going clockwise. Larger teams get a larger ellipse (the picture then
    scales down to the page width, and the list below stays full size)."""
    n = len(members)
    rx = max(330.0, n * (NODE_WIDTH + 14) / (2 * math.pi) * 1.15)
    ry = max(170.0, n * (box_height + 12) / (2 * math.pi) * 1.1)
    if n <= 2:
        ry = 150.0
    width = 2 * rx + NODE_WIDTH + 2 * MARGIN
    height = 2 * ry + box_height + 2 * MARGIN
    cx, cy = width / 2, height / 2
    placed = []
    for i, member in enumerate(members):
        angle = -math.pi / 2 + (2 * math.pi * i / n if n else 0)
        if n == 2:
            angle = math.pi * i  # side by side rather than top and bottom
        placed.append(_Placed(member, cx + rx * math.cos(angle), cy + ry * math.sin(angle)))
    return width, height, cx, cy, placed


SPINE = 18  # the narrow layout's line down the left, from the centre to each box


def _layout_narrow(
    members: Sequence[TeamMember], heights: Sequence[float]
) -> tuple[float, float, float, float, list[_Placed]]:
    """For a phone: the person at the top and the boxes one under another, each joined to
    a line down the left, so the picture keeps its text size at 320 pixels wide."""
    width = MARGIN + SPINE + NODE_WIDTH + MARGIN
    cx, cy = width / 2, MARGIN + CENTRE_RADIUS
    y: float = cy + CENTRE_RADIUS + 20
    placed = []
    for member, height in zip(members, heights, strict=True):
        placed.append(_Placed(member, MARGIN + SPINE + NODE_WIDTH / 2, y + height / 2))
        y += height + 12
    return width, y - 12 + MARGIN, cx, cy, placed


def network_svg(
    *,
    svg_id: str,
    centre_name: str,
    centre_caption: str,
    members: Sequence[TeamMember],
    narrow: bool = False,
) -> SafeString:
    """An inline <svg> of `members` around `centre_name`. Members are expected grouped by
    agency (Network.current_by_agency keeps each agency's boxes next to each other).
    `narrow` draws the phone layout (class `pw-network-narrow`): the page shows one of the
    two, by the screen's width."""
    lines = [_member_lines(m) for m in members]
    if narrow:
        heights = [_box_height(member_lines) for member_lines in lines]
        width, height, cx, cy, placed = _layout_narrow(members, heights)
        css_class = "pw-network-narrow"
    else:
        uniform = max((_box_height(member_lines) for member_lines in lines), default=NODE_HEIGHT)
        heights = [uniform] * len(members)
        width, height, cx, cy, placed = _layout(members, uniform)
        css_class = "pw-network"
    lead = next((m for m in members if m.lead_professional), None)
    masked = sum(1 for m in members if m.masked)
    named = len(members) - masked
    summary = [
        f"{named} {'person' if named == 1 else 'people'} involved now"
        if members
        else "No one is recorded as involved now",
    ]
    if masked:
        summary.append(f"{masked} sensitive {'service' if masked == 1 else 'services'} involved")
    if lead is not None:
        summary.append(f"lead professional {lead.practitioner_name} ({lead.role})")
    title = f"The team around {centre_name}"
    desc = "; ".join(summary) + ". The same facts are listed in text below the picture."
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" id="{escape(svg_id)}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="100%" '
        f'role="img" aria-labelledby="{escape(svg_id)}-title {escape(svg_id)}-desc" '
        f'font-family="Arial, Helvetica, sans-serif" fill="#0b0c0c">',
        f'<title id="{escape(svg_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(svg_id)}-desc">{escape(desc)}</desc>',
        f'<rect x="0" y="0" width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>',
    ]
    spine_x = MARGIN + SPINE / 2
    if narrow and placed:
        out.append(
            f'<line x1="{spine_x:.0f}" y1="{cy:.0f}" x2="{spine_x:.0f}" y2="{placed[-1].y:.0f}" '
            f'stroke="#505a5f" stroke-width="2"/>'
            f'<line x1="{spine_x:.0f}" y1="{cy:.0f}" x2="{cx:.0f}" y2="{cy:.0f}" '
            f'stroke="#505a5f" stroke-width="2"/>'
        )
    for p in placed:
        stroke = "#0b0c0c" if p.member.lead_professional else "#505a5f"
        dash = ' stroke-dasharray="6 5"' if p.member.masked else ""
        thickness = 4 if p.member.lead_professional else 2
        x1, y1 = (spine_x, p.y) if narrow else (cx, cy)
        out.append(
            f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{p.x:.0f}" y2="{p.y:.0f}" '
            f'stroke="{stroke}" stroke-width="{thickness}"{dash}/>'
        )
    for p, member_lines, box_height in zip(placed, lines, heights, strict=True):
        m = p.member
        fill = MASKED_FILL if m.masked else AGENCY_FILLS.get(m.agency_type, DEFAULT_FILL)
        left, top = p.x - NODE_WIDTH / 2, p.y - box_height / 2
        border = 4 if m.lead_professional else 2
        dash = ' stroke-dasharray="6 5"' if m.masked else ""
        kind = "masked" if m.masked else ("lead" if m.lead_professional else "member")
        # The box drawn around its own centre: its lines are the same markup in both
        # layouts (and for the same member on any page), written once.
        out.append(
            f'<g class="pw-network__member pw-network__member--{kind}" '
            f'transform="translate({p.x:.0f} {p.y:.0f})">'
        )
        out.append(f"<title>{escape(_member_title(m))}</title>")
        out.append(
            f'<rect x="{left - p.x:.0f}" y="{top - p.y:.0f}" width="{NODE_WIDTH}" '
            f'height="{box_height:.0f}" rx="6" fill="{fill}" stroke="#0b0c0c" '
            f'stroke-width="{border}"{dash}/>'
        )
        out.append(_lines_markup(tuple(member_lines)))
        out.append("</g>")
    out.append('<g class="pw-network__centre">')
    out.append(
        f'<circle cx="{cx:.0f}" cy="{cy:.0f}" r="{CENTRE_RADIUS}" fill="#ffffff" '
        f'stroke="#0b0c0c" stroke-width="4"/>'
    )
    # The person's name and birth date are wrapped afresh each time: only the team's
    # lines (practitioners' names, roles, organisations) are kept in the process.
    name_lines = _wrap.__wrapped__(centre_name, 16)
    caption_lines = _wrap.__wrapped__(centre_caption, 20)
    y = cy - (len(name_lines) * 20 + len(caption_lines) * 15) / 2 + 14
    for line in name_lines:
        out.append(_text(cx, y, line, size=17, weight="bold"))
        y += 20
    for line in caption_lines:
        out.append(_text(cx, y, line, size=12))
        y += 15
    out.append("</g></svg>")
    # Every piece of user text above went through escape().
    return mark_safe("".join(out))  # noqa: S308
