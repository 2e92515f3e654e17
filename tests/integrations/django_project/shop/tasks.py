"""Found by ``manage.py redline_worker`` (each installed app's tasks.py)."""

from redline.jobs import task


@task(queue="shop:orders", retries=3, backoff=0.05)
def confirm_order(order_id: int) -> int:
    from shop.models import Order

    return Order.objects.filter(id=order_id).update(confirmed=True)
