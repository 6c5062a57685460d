export {
  DEFAULT_PRICES,
  PRICES_AS_OF,
  type PriceEntry,
  type PriceRates,
  type PriceTable,
  type PriceTier,
} from './table.js'
export {
  createPricer,
  matchModel,
  priceUsage,
  validatePrices,
  type Cost,
  type Pricer,
  type PricesOption,
} from './price.js'
