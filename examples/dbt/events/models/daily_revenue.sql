{{ config(
    materialized='incremental',
    incremental_strategy='microbatch',
    event_time='sold_at',
    batch_size='day',
    begin='2026-11-20',
    lookback=1,
) }}
-- One batch per day: insync records each day as a partition of this model.
select
    s.sold_at,
    s.amount * r.rate as revenue,
    '{{ var("currency", "EUR") }}' as currency
from {{ source('raw', 'sales') }} as s
join {{ source('raw', 'fx_rates') }} as r
    on r.currency = '{{ var("currency", "EUR") }}'
