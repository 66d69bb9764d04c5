with paid as (
    select order_id, sum(amount) as amount_paid
    from {{ ref('stg_payments') }}
    group by order_id
)

select
    o.order_id,
    o.customer_id,
    o.order_date,
    o.quantity * p.price as order_total,
    coalesce(paid.amount_paid, 0) as amount_paid
from {{ ref('stg_orders') }} as o
join {{ ref('stg_products') }} as p on p.sku = o.sku
left join paid on paid.order_id = o.order_id
