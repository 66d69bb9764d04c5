select
    order_id,
    customer_id,
    cast(ordered_at as date) as order_date,
    cast(amount as decimal(10, 2)) as amount
from {{ source('raw', 'orders') }}
