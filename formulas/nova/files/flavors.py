"""Create the model's flavors in nova, idempotently (nova's bootstrap task `flavors`).

FLAVORS is a JSON mapping: name -> {vcpus, ram (MB), disk (GB), and optionally
is_public}. A flavor that exists with the same sizes is left alone; one with other sizes
is an error naming it (a flavor cannot change: servers refer to it). The admin's
credentials come from the environment (OS_*), never a file. Through keystoneauth and the
catalog's public compute endpoint.
"""

import json
import os
import sys

from keystoneauth1 import session
from keystoneauth1.identity import v3

env = os.environ
wanted = json.loads(env["FLAVORS"])
if not wanted:
    print("no flavors in the model")
    sys.exit(0)
auth = v3.Password(
    auth_url=env["OS_AUTH_URL"],
    username=env["OS_USERNAME"],
    password=env["OS_PASSWORD"],
    project_name=env["OS_PROJECT_NAME"],
    user_domain_name="Default",
    project_domain_name="Default",
)
api = session.Session(auth=auth)
where = {"service_type": "compute", "interface": "public", "region_name": env["OS_REGION_NAME"]}


def call(method, path, body=None):
    resp = api.request(path, method, json=body, endpoint_filter=where, raise_exc=False)
    if resp.status_code >= 400:
        sys.exit(f"{method} {path}: HTTP {resp.status_code} {resp.text[:300]}")
    return resp.json() if resp.content else {}


have = {f["name"]: f for f in call("GET", "/flavors/detail?is_public=None")["flavors"]}
for name, spec in sorted(wanted.items()):
    sizes = {"vcpus": int(spec["vcpus"]), "ram": int(spec["ram"]), "disk": int(spec["disk"])}
    found = have.get(name)
    if found is not None:
        differ = {k: (found[k], v) for k, v in sizes.items() if found[k] != v}
        if differ:
            sys.exit(f"flavor {name} exists with other sizes (has, model): {differ}")
        continue
    body = {"flavor": {"name": name, **sizes, "os-flavor-access:is_public": spec.get("is_public", True)}}
    call("POST", "/flavors", body)
    print(f"flavor {name} created: {sizes}")
print(f"flavors: {', '.join(sorted(wanted))}")
