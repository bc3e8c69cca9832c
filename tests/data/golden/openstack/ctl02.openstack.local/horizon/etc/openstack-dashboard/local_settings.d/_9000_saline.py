# Managed by saline (formula horizon). Django's settings module executes this after
# local_settings.py and after Debian's snippets (_0001 to _0006 in this folder), so what
# it sets wins. Literals only: Horizon logs and skips a snippet that raises.
# Nothing here is part of the offline compression context (WEBROOT, STATIC_URL,
# HORIZON_CONFIG, DEBUG, the themes): the bundle compressed when the image was built
# stays valid, and nothing is recompressed at start.

# Where users log in: keystone's public endpoint. The other services come from its
# catalog, at their public endpoints.
OPENSTACK_KEYSTONE_URL = "http://10.10.0.40:5000/v3"

# The names clients reach the dashboard by (the Host header): any other is refused (400).
ALLOWED_HOSTS = ["10.10.0.40", "10.10.0.31", "127.0.0.1", "localhost"]

# The same on every instance: what one instance signs (a session, a cookie), another
# accepts.
SECRET_KEY = "oJ3x5mRk2vQ8tZ1bY7nW4cL9fH6dS0gA3pE2uK8iV5rT1yN7qM"

# Sessions in the shared memcached: Debian's _0006 snippet keeps the cache (so the
# sessions) in each process, and a login breaks as soon as a second worker or instance
# gets a request.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.memcached.MemcachedCache",
        "LOCATION": ["10.10.0.30:11211"],
        "KEY_PREFIX": "horizon",
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
SESSION_TIMEOUT = 3600
