select
    c.customer_id,
    c.customer_name,
    c.country,
    count(o.order_id) as number_of_orders,
    coalesce(sum(o.order_total), 0) as lifetime_value
from {{ ref('stg_customers') }} as c
left join {{ ref('orders') }} as o on o.customer_id = c.customer_id
group by 1, 2, 3
