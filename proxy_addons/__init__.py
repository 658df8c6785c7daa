"""mitmproxy addons of the AIOps gateway, one feature per file.

Each file also works alone: `mitmdump -s proxy_addons/<file>.py`.
"""
