"""The Django project of the Django integration's tests (tests/integrations/test_django.py):
``python manage.py test shop`` (Django's runner) and ``python manage.py redline_worker``."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
