"""Debian's Chromium (`apt-get install chromium`), started the way this machine kind allows:
headless, no sandbox, nothing fetched from the network by the browser itself."""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
