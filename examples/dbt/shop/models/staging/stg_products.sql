select sku, name as product_name, {{ cents_to_dollars('price_cents') }} as price
from {{ ref('raw_products') }}
