select currency, sum(revenue) as revenue, count(*) as sales
from {{ ref('daily_revenue') }}
group by currency
