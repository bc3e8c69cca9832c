"""horizon's API check (formula.yml `api_check`): a real login through this instance's
own login form, as a browser does it; exit 0 when it succeeded.

1. GET /auth/login/: the form's fields (its hidden CSRF token and region) and the
   csrftoken cookie;
2. POST the form back with the admin's name and password: a login that keystone accepts
   is a redirect (302), a refused one the form again (200, with the reason);
3. GET / with the new session: a logged-in user is sent to their home (/project/),
   where anyone else gets the login page: the session holds (in the shared cache);
4. GET /auth/logout/: the session and its keystone token are dropped again.

Run in the instance's container. Standard library only. The credentials come from the
pillar the container runs with: horizon:server (bind: address, port; identity:
admin_user, admin_password), its secrets merged, as JSON on stdin (`saline-entrypoint
with-pillar horizon:server`); nothing secret is printed.
"""

import html.parser
import http.cookiejar
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT = 30
LOGIN = "/auth/login/"


def local_url(bind):
    """The instance's own address: its bind address, or loopback when it binds them all."""
    host = str(bind.get("address") or "0.0.0.0")
    if host in ("0.0.0.0", "::", "*"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{bind['port']}"


class LoginForm(html.parser.HTMLParser):
    """The fields of the page's form that posts to the login URL (name -> value), and
    the text of its error alerts."""

    def __init__(self):
        super().__init__()
        self.fields = {}
        self.found = False
        self.errors = []
        self._in_form = False
        self._alert = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and (a.get("action") or "").endswith(LOGIN):
            self._in_form = self.found = True
        elif tag == "form":
            self._in_form = False
        elif tag == "input" and self._in_form and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""
        if tag == "div":
            # The form's own errors (not the page's "requires JavaScript" notice), with
            # the divs inside them.
            alert = self._in_form and "alert-danger" in (a.get("class") or "").split()
            if alert or self._alert:
                self._alert += 1

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False
        if tag == "div" and self._alert:
            self._alert -= 1

    def handle_data(self, data):
        if self._alert and data.strip():
            self.errors.append(data.strip())


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are answers to look at, not to follow."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Failed(Exception):
    pass


def call(opener, url, data=None):
    """(status, Location header, body) of one request."""
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    try:
        with opener.open(request, timeout=TIMEOUT) as resp:
            return resp.status, resp.headers.get("Location", ""), resp.read().decode()
    except urllib.error.HTTPError as e:
        if e.code in (301, 302, 303):
            return e.code, e.headers.get("Location", ""), ""
        method = "GET" if data is None else "POST"
        raise Failed(f"{method} {url}: HTTP {e.code} {e.reason}") from None


def path_of(location):
    return urllib.parse.urlsplit(location).path or "/"


def login(base, user, password):
    """The login's steps; a line saying what was seen, or :class:`Failed`."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    status, _, body = call(opener, base + LOGIN)
    form = LoginForm()
    form.feed(body)
    if status != 200 or not form.found or "csrfmiddlewaretoken" not in form.fields:
        raise Failed(f"GET {base}{LOGIN}: HTTP {status}, no login form with a CSRF token")
    fields = {**form.fields, "username": user, "password": password}
    data = urllib.parse.urlencode(fields).encode()
    status, location, body = call(opener, base + LOGIN, data)
    if status not in (301, 302, 303):
        refused = LoginForm()
        refused.feed(body)
        why = " ".join(refused.errors) or "no reason shown"
        raise Failed(f"POST {base}{LOGIN}: the login was refused (HTTP {status}: {why})")
    status, home, _ = call(opener, base + "/")
    if status not in (301, 302, 303) or path_of(home).startswith(LOGIN):
        raise Failed(
            f"GET {base}/ after the login: HTTP {status} {home or ''} (no session: is the "
            "cache reachable?)"
        )
    call(opener, base + "/auth/logout/")
    return f"logged in as {user} (redirected to {path_of(location)}, home {path_of(home)})"


def main():
    try:
        server = json.load(sys.stdin)
    except (OSError, ValueError) as e:
        print(f"horizon: no pillar: {e}")
        return 1
    base = local_url(server["bind"])
    identity = server["identity"]
    started = time.monotonic()
    try:
        done = login(base, identity["admin_user"], identity["admin_password"])
    except Failed as e:
        print(f"horizon at {base}: {e}")
        return 1
    except (OSError, ValueError) as e:
        print(f"horizon at {base}: {type(e).__name__}: {e}")
        return 1
    print(f"horizon at {base}: {done} ({time.monotonic() - started:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
