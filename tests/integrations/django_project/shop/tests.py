"""Run by Django's test runner (``manage.py test shop``) on SQLite, against a real Redis.

TransactionTestCase: these tests need real commits and rollbacks (a TestCase wraps each test
in a transaction that never commits, so on_commit callbacks would never run)."""

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import TransactionTestCase

from redline.errors import JobSerializationError
from redline.integrations.django import RedlineSettings, client, enqueue, enqueue_on_commit
from redline.testing import enqueued
from shop.models import Order
from shop.tasks import confirm_order


def waiting() -> list[tuple[object, ...]]:
    return [(d.task, *d.args) for d in enqueued(client(), "shop:orders")]


class EnqueueOnCommit(TransactionTestCase):
    def setUp(self) -> None:
        client().flushdb()

    def test_a_committed_transaction_enqueues_its_jobs_at_the_commit(self) -> None:
        with transaction.atomic():
            order = Order.objects.create(item="book")
            enqueue_on_commit(confirm_order, order.id)
            self.assertEqual(waiting(), [])  # not before the commit
        self.assertEqual(waiting(), [(confirm_order.name, order.id)])

    def test_a_rolled_back_transaction_enqueues_nothing(self) -> None:
        with self.assertRaises(RuntimeError), transaction.atomic():
            order = Order.objects.create(item="book")
            enqueue_on_commit(confirm_order, order.id)
            raise RuntimeError("payment refused")
        self.assertEqual(Order.objects.count(), 0)
        self.assertEqual(waiting(), [])

    def test_a_rolled_back_savepoint_drops_only_its_own_jobs(self) -> None:
        with transaction.atomic():
            kept = Order.objects.create(item="kept")
            enqueue_on_commit(confirm_order, kept.id)
            with self.assertRaises(RuntimeError), transaction.atomic():
                enqueue_on_commit(confirm_order, 999)
                raise RuntimeError("inner block fails")
        self.assertEqual(waiting(), [(confirm_order.name, kept.id)])

    def test_outside_a_transaction_it_enqueues_at_once(self) -> None:
        enqueue_on_commit(confirm_order, 1)
        job_id = enqueue(confirm_order, 2)
        self.assertEqual(waiting(), [(confirm_order.name, 1), (confirm_order.name, 2)])
        self.assertEqual(len(job_id or ""), 32)

    def test_arguments_that_are_not_json_fail_at_the_call(self) -> None:
        with transaction.atomic():
            with self.assertRaisesRegex(JobSerializationError, "argument 0"):
                enqueue_on_commit(confirm_order, b"bytes")
            Order.objects.create(item="still committed")
        self.assertEqual(waiting(), [])


class Settings(TransactionTestCase):
    def test_unknown_keys_and_bad_values_are_refused_by_name(self) -> None:
        with self.assertRaisesRegex(ImproperlyConfigured, "urll: Extra inputs"):
            RedlineSettings.parse({"urll": "redis://x"})
        with self.assertRaisesRegex(ImproperlyConfigured, "concurrency: Input should be greater"):
            RedlineSettings.parse({"concurrency": 0})
        self.assertEqual(RedlineSettings.parse(None).url, "redis://127.0.0.1:6379/0")
