"""The example worker: no port of its own; polls the api every few seconds."""

import json
import os
import time
import urllib.request

while True:
    with urllib.request.urlopen(f"{os.environ['API_URL']}/items", timeout=5) as response:
        print(f"worker: the api has {len(json.load(response)['items'])} items")
    time.sleep(5)
