"""Create the model's networks in neutron, idempotently (neutron's bootstrap task
`networks`).

NETWORKS is a JSON mapping: name -> {external (bool), shared (bool), network_type,
physical_network, subnets: name -> {cidr, gateway, dhcp (bool), pool: {start, end}}}.
A network or subnet that exists (by name) is left alone. The admin's credentials come
from the environment (OS_*), never a file; neutron through the catalog's public network
endpoint.
"""

import json
import os
import sys

from keystoneauth1 import session
from keystoneauth1.identity import v3

env = os.environ
wanted = json.loads(env["NETWORKS"])
if not wanted:
    print("no networks in the model")
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
where = {"service_type": "network", "interface": "public", "region_name": env["OS_REGION_NAME"]}


def call(method, path, body=None):
    resp = api.request(path, method, json=body, endpoint_filter=where, raise_exc=False)
    if resp.status_code >= 400:
        sys.exit(f"{method} {path}: HTTP {resp.status_code} {resp.text[:300]}")
    return resp.json() if resp.content else {}


for name, spec in sorted(wanted.items()):
    found = call("GET", f"/v2.0/networks?name={name}")["networks"]
    if found:
        net = found[0]
    else:
        body = {
            "name": name,
            "router:external": bool(spec.get("external", False)),
            "shared": bool(spec.get("shared", False)),
            "provider:network_type": spec.get("network_type", "vxlan"),
        }
        if spec.get("physical_network"):
            body["provider:physical_network"] = spec["physical_network"]
        net = call("POST", "/v2.0/networks", {"network": body})["network"]
        print(f"network {name} created")
    for sname, sub in sorted(spec.get("subnets", {}).items()):
        if call("GET", f"/v2.0/subnets?name={sname}&network_id={net['id']}")["subnets"]:
            continue
        body = {
            "name": sname,
            "network_id": net["id"],
            "ip_version": 4,
            "cidr": sub["cidr"],
            "gateway_ip": sub.get("gateway"),
            "enable_dhcp": bool(sub.get("dhcp", True)),
        }
        if sub.get("pool"):
            body["allocation_pools"] = [sub["pool"]]
        call("POST", "/v2.0/subnets", {"subnet": body})
        print(f"subnet {sname} of {name} created")
print(f"networks: {', '.join(sorted(wanted))}")
