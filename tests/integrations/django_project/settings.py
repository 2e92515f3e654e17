"""Settings of the test project: SQLite (SHOP_DB, default in memory), redline on REDLINE_URL."""

import os

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["redline.integrations.django", "shop"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DB", ":memory:"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
REDLINE = {"url": os.environ["REDLINE_URL"], "queues": ["shop:orders"], "concurrency": 4}
