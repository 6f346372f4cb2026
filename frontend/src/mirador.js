// Mirador for Vitrine's viewer page: the package's ES build bundled with its React,
// MUI and OpenSeadragon into one script that defines window.Mirador.
export * from "mirador";
