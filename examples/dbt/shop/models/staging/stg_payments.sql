select
    payment_id,
    order_id,
    {{ cents_to_dollars('amount_cents') }} as amount
from {{ source('raw', 'payments') }}
